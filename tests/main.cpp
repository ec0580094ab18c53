// main.cpp — the Catch2 runner for the vqz suite. A listener counts test cases as passed, failed or
// skipped (a test that called vqz_test_skip) and the run ends with the plain line
// "N passed, N failed, N skipped" that .ci/run reports.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <sys/stat.h>

#include "testutil.h"

namespace {
bool g_skipped = false;
int g_passed = 0, g_failed = 0, g_skipped_count = 0;

struct CountListener : Catch::TestEventListenerBase {
    using TestEventListenerBase::TestEventListenerBase;
    void testCaseStarting(Catch::TestCaseInfo const &) override { g_skipped = false; }
    void testCaseEnded(Catch::TestCaseStats const &stats) override
    {
        if (stats.totals.assertions.failed > 0 || stats.totals.testCases.failed > 0)
            g_failed++;
        else if (g_skipped)
            g_skipped_count++;
        else
            g_passed++;
    }
};
} // namespace

CATCH_REGISTER_LISTENER(CountListener)

void vqz_test_skip(const std::string &why)
{
    g_skipped = true;
    std::printf("SKIPPED: %s\n", why.c_str());
    std::fflush(stdout);
}

std::string vqz_test_path(const std::string &rel)
{
    struct stat st;
    const char *env = std::getenv("VQZ_TEST_DIR");
    std::string base = env ? env : "tests";
    if (stat(base.c_str(), &st) != 0)
        base = "../tests";
    return base + "/" + rel;
}

int main(int argc, char **argv)
{
    Catch::Session session;
    int rc = session.applyCommandLine(argc, argv);
    if (rc != 0)
        return rc;
    rc = session.run();
    std::printf("%d passed, %d failed, %d skipped\n", g_passed, g_failed, g_skipped_count);
    return (rc != 0 || g_failed > 0) ? 1 : 0;
}
