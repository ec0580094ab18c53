// test_device.cpp — the CUDA backend's libraries: cuBLAS is mapped on first CUDA use, not at start-up.
#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <string>

#include "testutil.h"

extern "C" {
#include "common/status.h"
#include "kernels/cuda_common.h"
}

static bool mapped(const char *name)
{
    std::ifstream f("/proc/self/maps");
    std::string line;
    while (std::getline(f, line))
        if (line.find(name) != std::string::npos)
            return true;
    return false;
}

TEST_CASE("cuBLAS is loaded when first needed, not when the library is", "[core][cuda]")
{
    bool cuda_build = std::strstr(vqz_version(), "cuda") != nullptr;
    if (!cuda_build) {
        REQUIRE(vqz_cublas_load() == VQZ_ERR_NO_CUDA);
        REQUIRE(std::strstr(vqz_last_error(), "CUDA") != nullptr);
        REQUIRE_FALSE(mapped("libcublas"));
        return;
    }
    // Without a GPU no context can have loaded it; with one, earlier tests may have.
    if (!vqz_cuda_available())
        REQUIRE_FALSE(mapped("libcublas"));
    REQUIRE(vqz_cublas_load() == VQZ_OK);
    REQUIRE(mapped("libcublas.so"));
    REQUIRE(mapped("libcublasLt.so"));
    REQUIRE(vqz_cublas_load() == VQZ_OK);
}
