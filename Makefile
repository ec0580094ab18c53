# vqz — top-level build. `make` builds libvqz (static + shared) and the tools; `make test` runs the
# Catch2 suite; `make sanitize` runs it under ASan+UBSan; `make bench` the benchmarks.
# CUDA=auto (default) builds kernels/ when nvcc is found, CUDA=1 requires it, CUDA=0 never.

PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
CUDA     ?= auto
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
ARCHFLAGS ?= -march=x86-64-v3
OPT      ?= -O2

CC  ?= gcc
CXX ?= g++
ifeq ($(origin CC),default)
CC := gcc
endif
ifeq ($(origin CXX),default)
CXX := g++
endif

ifeq ($(CUDA),auto)
  USE_CUDA := $(if $(NVCC),1,0)
else
  USE_CUDA := $(CUDA)
endif
ifeq ($(USE_CUDA),1)
  ifeq ($(NVCC),)
    $(error CUDA=1 but nvcc was not found)
  endif
endif

WARN     := -Wall -Wextra -Werror
# the installed model folder is compiled in (codec/model.c); programs also look beside themselves
CPPFLAGS += -I. -Iinclude -D_DEFAULT_SOURCE -DVQZ_BUILDING_LIBRARY -DVQZ_SHARE_DIR='"$(PREFIX)/share/vqz/models"'
CFLAGS   += -std=c11 $(OPT) -g $(ARCHFLAGS) $(WARN) -fPIC -fopenmp -fvisibility=hidden $(SANFLAGS)
# -Wno-maybe-uninitialized: GCC 12 reports a false positive inside std::regex (used by Catch2) under -O1
CXXFLAGS += -std=c++14 -O1 -g $(ARCHFLAGS) -Wall -Wextra -Werror -Wno-maybe-uninitialized -fopenmp $(SANFLAGS)
LDLIBS   := -ldnnl -lopenblas -lfftw3f -lcjson -lzstd -lpng -ljpeg -lsndfile -lsoxr -lm -lpthread
LDFLAGS  += -fopenmp $(SANFLAGS)

NVCCFLAGS := -O2 -std=c++17 -I. -Iinclude -Xcompiler -fPIC,-Wall,-Werror,-fvisibility=hidden \
             -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90
ifeq ($(USE_CUDA),1)
  CPPFLAGS += -DVQZ_HAVE_CUDA=1
  CUDA_SRC := $(wildcard kernels/*.cu)
  # libstdc++: nvcc's launch stubs use C++ runtime pieces (thread-safe statics, unwinding)
  CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublas -lcufft -lstdc++
  KERNEL_C :=
else
  CUDA_SRC :=
  CUDA_LIBS :=
  KERNEL_C := kernels/nocuda.c
endif

LIB_C   := $(wildcard common/*.c nn/*.c format/*.c codec/*.c) $(KERNEL_C)
LIB_OBJ := $(LIB_C:%.c=$(BUILD)/obj/%.o) $(CUDA_SRC:%.cu=$(BUILD)/obj/%.cu.o)
TOOL_SRC := $(wildcard tools/vqz-*.c)
TOOLS   := $(TOOL_SRC:tools/%.c=$(BUILD)/bin/%)
TEST_SRC := $(wildcard tests/*.cpp)
TEST_OBJ := $(TEST_SRC:%.cpp=$(BUILD)/obj/%.o)
TEST_BIN := $(BUILD)/tests/vqz-tests
STATIC  := $(BUILD)/lib/libvqz.a
SHARED  := $(BUILD)/lib/libvqz.so.$(shell sed -n 's/^#define VQZ_VERSION_MAJOR //p' include/vqz.h)

.PHONY: engine-demo all deps test sanitize valgrind bench bench-quick install uninstall clean demo
all: deps $(STATIC) $(SHARED) $(TOOLS) $(BUILD)/vqz.pc

# Installs missing Debian build/test packages; silent and quick when everything is there.
deps:
	@sh tools/install-deps.sh

$(BUILD)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu | deps
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -DVQZ_HAVE_CUDA=1 -DVQZ_BUILDING_LIBRARY -MMD -MP -c $< -o $@

$(BUILD)/obj/tests/%.o: tests/%.cpp | deps
	@mkdir -p $(dir $@)
	$(CXX) -I. -Iinclude $(filter -DVQZ_HAVE_CUDA=1,$(CPPFLAGS)) $(CXXFLAGS) -MMD -MP -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(SHARED): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,$(notdir $@) $(LDFLAGS) -o $@ $^ $(CUDA_LIBS) $(LDLIBS)
	ln -sf $(notdir $@) $(BUILD)/lib/libvqz.so

$(BUILD)/bin/%: tools/%.c $(wildcard tools/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(CUDA_LIBS) $(LDLIBS)

$(TEST_BIN): $(TEST_OBJ) $(STATIC)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $(TEST_OBJ) $(STATIC) $(CUDA_LIBS) $(LDLIBS)

$(BUILD)/vqz.pc: Makefile include/vqz.h
	@mkdir -p $(dir $@)
	@printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: vqz\nDescription: neural media codec (VQ-VAE) for images and audio\nVersion: %s\nLibs: -L$${libdir} -lvqz\nLibs.private: %s %s\nCflags: -I$${includedir}\n' \
	  '$(PREFIX)' '$(shell sed -n 's/^#define VQZ_VERSION_STRING "\(.*\)"/\1/p' include/vqz.h)' '$(CUDA_LIBS)' '$(LDLIBS) -fopenmp' > $@

# The README's test command. Runs the whole Catch2 suite; its last line is "N passed, N failed, N skipped".
test: all $(TEST_BIN)
	@cd $(CURDIR) && $(TEST_BIN) $(TESTARGS)

sanitize:
	$(MAKE) BUILD=build-san CUDA=0 OPT=-O1 SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test

# valgrind runs a CPU-only build: the CUDA runtime's loader trips memcheck before any test starts.
# oneDNN is held to its SSE4.1 kernels there: its AVX2 JIT kernels read tails with masked vector loads
# (vmaskmovps), which memcheck reports as invalid reads past oneDNN's own buffers, and switch stacks in
# ways memcheck cannot follow. Our code keeps its AVX2 build; `make sanitize` runs oneDNN at full ISA.
valgrind:
	$(MAKE) BUILD=build-vg CUDA=0 all build-vg/tests/vqz-tests
	DNNL_MAX_CPU_ISA=SSE41 OMP_NUM_THREADS=1 VQZ_THREADS=1 valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
	  --suppressions=tests/valgrind.supp build-vg/tests/vqz-tests $(TESTARGS)

BENCH_BIN := $(BUILD)/bin/bench_nn
$(BENCH_BIN): bench/bench_nn.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(CUDA_LIBS) $(LDLIBS)

CEILING_BIN := $(BUILD)/bin/bench_ceiling
$(CEILING_BIN): bench/ceiling.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(CUDA_LIBS) $(LDLIBS)

DEMO_BIN := $(BUILD)/bin/engine-demo
$(DEMO_BIN): samples/engine-demo.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(CUDA_LIBS) $(LDLIBS)

# The README's main command: the sample photographs and recordings through the default models.
demo: all
	@BUILD=$(BUILD) sh tools/demo.sh

# The engine alone: trains a small image model on a photo's crops and codes the samples at each level.
engine-demo: all $(DEMO_BIN)
	$(DEMO_BIN) --steps 300 samples/images/coffee.png samples/images/chelsea.png

bench: all $(BENCH_BIN) $(CEILING_BIN)
	@sh bench/run.sh

# Under 5 minutes: the rate-distortion benchmark on 6 images and 6+6 clips (bench/out/RESULTS-quick.md),
# and two engine decode rows, vqz only, one timed run each (bench/out/nn-quick.jsonl).
bench-quick: all $(BENCH_BIN)
	@sh bench/rd.sh --quick
	@BUILD=$(BUILD) /usr/bin/python3 bench/e2e.py --quick
	@for row in image-decode audio-decode; do VQZ_THREADS=2 OMP_NUM_THREADS=2 nice -n 10 $(BENCH_BIN) $$row 1 || exit 1; \
	  done > bench/out/nn-quick.jsonl && cat bench/out/nn-quick.jsonl

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/vqz/models
	install -m 644 include/vqz.h $(DESTDIR)$(PREFIX)/include/vqz.h
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf $(notdir $(SHARED)) $(DESTDIR)$(PREFIX)/lib/libvqz.so
	sed 's|^prefix=.*|prefix=$(PREFIX)|' $(BUILD)/vqz.pc > $(DESTDIR)$(PREFIX)/lib/pkgconfig/vqz.pc
	$(if $(TOOLS),install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/)
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 $(wildcard tools/*.1) $(DESTDIR)$(PREFIX)/share/man/man1/
	$(if $(wildcard samples/models/*.safetensors),install -m 644 $(wildcard samples/models/*.safetensors) $(DESTDIR)$(PREFIX)/share/vqz/models/)

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/vqz.h $(DESTDIR)$(PREFIX)/lib/libvqz.a $(DESTDIR)$(PREFIX)/lib/libvqz.so* \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/vqz.pc $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(notdir $(TOOLS))) \
	  $(addprefix $(DESTDIR)$(PREFIX)/share/man/man1/,$(notdir $(wildcard tools/*.1)))
	rm -rf $(DESTDIR)$(PREFIX)/share/vqz

clean:
	rm -rf build build-san build-vg

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
