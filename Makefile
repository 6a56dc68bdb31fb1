# effcam - one Makefile. Knobs:
#   DEBUG=1     AddressSanitizer + UndefinedBehaviorSanitizer, -O1, objects in build/debug
#   TSAN=1      ThreadSanitizer, objects in build/tsan (the concurrency test runs it)
#   NATIVE=1    -march=native for everything (default: baseline x86-64 + per-file ISA flags)
#   WERROR=0    do not turn warnings into errors
#   PREFIX=...  install prefix (default /usr/local)
# Targets: all demo test bench fuzz install uninstall clean
# Run-time switches: EFFCAM_NO_AVX2=1 (scalar kernels + OpenBLAS), EFFCAM_NO_AVX512=1
# (AVX2 kernels). build/bench/kbench (bench/kbench.c, built by `all`) times each
# kernel variant on EfficientNetV2-S's shapes: `build/bench/kbench [gemm|dw|conv|act]`.

CC      ?= cc
PREFIX  ?= /usr/local
DEBUG   ?= 0
NATIVE  ?= 0
WERROR  ?= 1
SOVERSION := 0
VERSION := 0.1.0

ifeq ($(TSAN),1)
  BUILD  ?= build/tsan
  OPT    := -O1 -g -fno-omit-frame-pointer -fsanitize=thread
  LDSAN  := -fsanitize=thread
else ifeq ($(DEBUG),1)
  BUILD  ?= build/debug
  OPT    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
  LDSAN  := -fsanitize=address,undefined
else
  BUILD  ?= build
  OPT    := -O2 -g
  LDSAN  :=
endif
ifeq ($(NATIVE),1)
  OPT += -march=native
endif
WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter
ifeq ($(WERROR),1)
  WARN += -Werror
endif

# Lazily evaluated: the packages may be installed by `make deps` in the same run.
BLAS_CFLAGS = $(shell pkg-config --cflags openblas 2>/dev/null)
CFLAGS_ALL  = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -fPIC -MMD -MP -I. $(BLAS_CFLAGS) $(CFLAGS)
LIBS        = -ljpeg -lz -lm -lpthread -ldl
# Per-file ISA flags: only the files that need them (runtime dispatch picks):
# kernels/NAME__avx2.c and kernels/NAME__avx512.c.
ISA_avx2    := -mavx2 -mfma -mf16c
ISA_avx512  := -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma -mf16c

KERNEL_SRC  := $(sort $(wildcard kernels/*.c))
ENGINE_SRC  := $(sort $(wildcard engine/*.c))
IMAGE_SRC   := $(sort $(wildcard image/*.c))
CLI_SRC     := $(sort $(wildcard cli/*.c))
CONVERT_SRC := $(sort $(wildcard convert/*.c))
MODELS_SRC  := $(sort $(wildcard models/*.c))
TEST_SRC    := $(sort $(wildcard tests/test_*.c))
BENCH_SRC   := $(sort $(wildcard bench/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJ   := $(call obj,$(KERNEL_SRC) $(ENGINE_SRC) $(IMAGE_SRC))
TOOL_OBJ  := $(call obj,$(CONVERT_SRC) $(MODELS_SRC))
CLI_OBJ   := $(call obj,$(CLI_SRC))
TEST_BIN  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
TEST_SHIM := $(BUILD)/tests/shim_no_openblas.so

LIB_A   := $(BUILD)/libeffcam.a
LIB_SO  := $(BUILD)/libeffcam.so.$(VERSION)
TOOL_A  := $(BUILD)/libeffcam_tools.a
EFFCAM  := $(BUILD)/effcam

.DELETE_ON_ERROR:
.PHONY: all demo test test-run bench fuzz deps install uninstall clean
# Objects reached only through the pattern rules below would be deleted as
# intermediates, and a second `make` would then compile them again.
.SECONDARY: $(patsubst $(BUILD)/%,$(BUILD)/obj/%.o,$(TEST_BIN) $(BENCH_BIN))
all: $(EFFCAM) $(LIB_A) $(LIB_SO) $(TEST_BIN) $(BENCH_BIN) $(TEST_SHIM)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(ISA_$(lastword $(subst __, ,$(basename $(notdir $<))))) -c $< -o $@

# stb_image's implementation is third-party code compiled from the system header.
$(BUILD)/obj/image/stb_image_impl.o: image/stb_image_impl.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Werror -Wshadow -Wextra,$(CFLAGS_ALL)) -Wno-unused-function -c $< -o $@

$(LIB_A): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(LIB_SO): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libeffcam.so.$(SOVERSION) $(LDSAN) -o $@ $^ $(LIBS)
	ln -sf libeffcam.so.$(VERSION) $(BUILD)/libeffcam.so.$(SOVERSION)
	ln -sf libeffcam.so.$(SOVERSION) $(BUILD)/libeffcam.so

$(TOOL_A): $(TOOL_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(EFFCAM): $(CLI_OBJ) $(TOOL_A) $(LIB_A)
	$(CC) $(LDSAN) -o $@ $(CLI_OBJ) $(TOOL_A) $(LIB_A) $(LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TOOL_A) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $< $(TOOL_A) $(LIB_A) $(LIBS)

# test_cli.sh preloads it to make every dlopen of OpenBLAS fail (no sanitizer:
# it only forwards dlopen, and a preloaded ASan library would have to come first).
$(TEST_SHIM): tests/shim_no_openblas.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 $(WARN) -fPIC -shared -o $@ $< -ldl

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(TOOL_A) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $< $(TOOL_A) $(LIB_A) $(LIBS)

# Installs missing Debian packages when run as root; otherwise prints the line.
deps:
	@sh .ci/deps

demo: deps
	@$(MAKE) --no-print-directory $(EFFCAM)
	@sh tests/demo.sh $(EFFCAM)

# The suite twice: the normal build (all fixtures), then the ASan+UBSan build
# on the tiny fixtures; one summary line for both.
test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory DEBUG=1 all
	@sh tests/run.sh build build/debug

bench: deps
	@$(MAKE) --no-print-directory all
	@sh bench/run.sh $(BUILD)

# The library, its header, the CLI and a pkg-config file. DESTDIR is honoured.
LIBDIR := $(PREFIX)/lib
install: $(EFFCAM) $(LIB_A) $(LIB_SO)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 755 $(EFFCAM) $(DESTDIR)$(PREFIX)/bin/effcam
	install -m 644 effcam.h $(DESTDIR)$(PREFIX)/include/effcam.h
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libeffcam.a
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/libeffcam.so.$(VERSION)
	ln -sf libeffcam.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libeffcam.so.$(SOVERSION)
	ln -sf libeffcam.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libeffcam.so
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	  'Name: effcam' 'Description: EfficientNet inference and Grad-CAM for converted Keras models' \
	  'Version: $(VERSION)' 'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -leffcam' \
	  'Requires.private: zlib libjpeg' 'Libs.private: -lm -lpthread -ldl' > $(DESTDIR)$(LIBDIR)/pkgconfig/effcam.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/effcam $(DESTDIR)$(PREFIX)/include/effcam.h
	rm -f $(DESTDIR)$(LIBDIR)/libeffcam.a $(DESTDIR)$(LIBDIR)/libeffcam.so \
	  $(DESTDIR)$(LIBDIR)/libeffcam.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libeffcam.so.$(VERSION) \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/effcam.pc

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ==== fuzzing =====================================================================
# `make fuzz`: every tests/fuzz/fuzz_NAME.c built with clang's libFuzzer, ASan and
# UBSan into build/fuzz/fuzz_NAME, then each run for FUZZ_SECONDS on a writable
# corpus (build/fuzz/corpus/NAME) plus its committed seeds and regressions; one
# line per target, non-zero exit if any crashed (inputs in build/fuzz/artifacts,
# output in build/fuzz/logs). `make -j2 fuzz` runs two at a time.
# `make fuzz-smoke`: the same for 20 s each (CI).
# The targets' entry points are also linked into tests/test_fuzz_regressions
# (normal rules, no libFuzzer), which replays tests/fuzz/regressions and seeds.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_DIR     := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
                -fsanitize-coverage-ignorelist=tests/fuzz/coverage_ignore.txt \
                $(WARN) -MMD -MP -I. $(BLAS_CFLAGS) $(CFLAGS)
FUZZ_RUNOPTS := -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
FUZZ_SRC     := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
# The CLI's request parser (fuzz_serve) and what it uses of the CLI.
FUZZ_CLI_SRC := cli/serve_request.c cli/common.c
FUZZ_OBJ     := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(KERNEL_SRC) $(ENGINE_SRC) $(IMAGE_SRC) $(CONVERT_SRC) $(MODELS_SRC) \
                $(FUZZ_CLI_SRC))
FUZZ_BIN     := $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_NAMES))
FUZZ_MAIN    := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_SRC))
# Per target: -max_len and extra seed directories (libFuzzer writes to the first).
# Kept small so that an execution costs microseconds (tests/fuzz/README.md).
FUZZ_ARGS_ecm    := -max_len=16384
FUZZ_ARGS_keras  := -max_len=262144 -dict=tests/fuzz/keras.dict
FUZZ_ARGS_json   := -max_len=4096 -dict=tests/fuzz/keras.dict
FUZZ_ARGS_zip    := -max_len=16384
FUZZ_ARGS_image  := -max_len=16384
FUZZ_ARGS_hdf5   := -max_len=16384
FUZZ_ARGS_labels := -max_len=4096
FUZZ_ARGS_jpeg   := -max_len=16384 tests/fuzz/seeds/image
FUZZ_ARGS_serve  := -max_len=4096
fuzz_args = $(or $(FUZZ_ARGS_$(1)),-max_len=65536) $(wildcard tests/fuzz/seeds/$(1) tests/fuzz/regressions/$(1))

.PHONY: fuzz fuzz-smoke fuzz-check fuzz-build fuzz-bins $(addprefix fuzz-run-,$(FUZZ_NAMES))
# Objects reached only through pattern rules would be deleted as intermediates.
.SECONDARY: $(FUZZ_OBJ) $(FUZZ_MAIN)

fuzz-check:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { \
	  echo "fuzz: $(FUZZ_CC) not found: install clang and libclang-rt-dev (Debian: apt-get install clang libclang-rt-14-dev) or set FUZZ_CC"; exit 1; }
	@mkdir -p $(FUZZ_DIR)
	@printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
	  > $(FUZZ_DIR)/probe.c
	@$(FUZZ_CC) -fsanitize=fuzzer,address $(FUZZ_DIR)/probe.c -o $(FUZZ_DIR)/probe >/dev/null 2>&1 || { \
	  echo "fuzz: $(FUZZ_CC) cannot link -fsanitize=fuzzer: the libFuzzer runtime is missing (Debian: apt-get install libclang-rt-14-dev)"; exit 1; }

fuzz-build: fuzz-check
	@$(MAKE) --no-print-directory fuzz-bins

fuzz-bins: $(FUZZ_BIN)
	@:

fuzz: fuzz-build
	@rm -f $(FUZZ_DIR)/logs/*.status
	@$(MAKE) --no-print-directory $(addprefix fuzz-run-,$(FUZZ_NAMES))
	@fail=0; for n in $(FUZZ_NAMES); do \
	  [ "$$(cat $(FUZZ_DIR)/logs/$$n.status 2>/dev/null)" = 0 ] || fail=1; done; \
	  if [ $$fail = 0 ]; then echo "fuzz: no crashes"; else echo "fuzz: CRASHES found (see above)"; fi; exit $$fail

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=20

# Always succeeds: the verdict goes to logs/NAME.status for `fuzz` to collect.
$(addprefix fuzz-run-,$(FUZZ_NAMES)): fuzz-run-%: $(FUZZ_DIR)/fuzz_%
	@mkdir -p $(FUZZ_DIR)/corpus/$* $(FUZZ_DIR)/artifacts $(FUZZ_DIR)/logs
	@log=$(FUZZ_DIR)/logs/$*.log; \
	  $< $(FUZZ_RUNOPTS) -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_DIR)/artifacts/$*- \
	    $(FUZZ_DIR)/corpus/$* $(call fuzz_args,$*) > $$log 2>&1; rc=$$?; \
	  execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log | tail -n 1); \
	  if [ $$rc = 0 ]; then verdict="no crash"; \
	  else verdict="CRASHED (exit $$rc): $$(grep -m1 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' $$log) - see $$log"; fi; \
	  printf 'fuzz %-6s %10s execs (%ss budget): %s\n' $* "$${execs:-?}" $(FUZZ_SECONDS) "$$verdict"; \
	  echo $$rc > $(FUZZ_DIR)/logs/$*.status

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(ISA_$(lastword $(subst __, ,$(basename $(notdir $<))))) -c $< -o $@

# kernels/ are fixed-shape arithmetic with their own exactness tests: sanitized,
# but not coverage-instrumented, so fuzzing time goes to the parsers.
$(FUZZ_DIR)/obj/kernels/%.o: kernels/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(filter-out -fsanitize=fuzzer-no-link -fsanitize-coverage-ignorelist=%,$(FUZZ_CFLAGS)) $(ISA_$(lastword $(subst __, ,$(basename $(notdir $<))))) -c $< -o $@

$(FUZZ_DIR)/obj/image/stb_image_impl.o: image/stb_image_impl.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(filter-out -Werror -Wshadow -Wextra,$(FUZZ_CFLAGS)) -Wno-unused-function -c $< -o $@

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_OBJ)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(LIBS)

# Regenerates the .ecm seeds (tests/fuzz/gen_ecm_seeds.c); a normal build.
$(BUILD)/fuzz/gen_ecm_seeds: tests/fuzz/gen_ecm_seeds.c $(TOOL_A) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDSAN) -o $@ $^ $(LIBS)

# The regression test: each target's object with its entry points renamed.
$(BUILD)/obj/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DLLVMFuzzerTestOneInput=ec_fuzz_$(*:fuzz_%=%)_one \
	  -DLLVMFuzzerInitialize=ec_fuzz_$(*:fuzz_%=%)_init -c $< -o $@

$(BUILD)/obj/tests/test_fuzz_regressions.o: tests/test_fuzz_regressions.c $(FUZZ_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DEC_FUZZ_TARGETS='$(foreach n,$(FUZZ_NAMES),X($(n)))' -c $< -o $@

$(BUILD)/tests/test_fuzz_regressions: $(BUILD)/obj/tests/test_fuzz_regressions.o \
    $(patsubst tests/fuzz/%.c,$(BUILD)/obj/tests/fuzz/%.o,$(FUZZ_SRC)) $(call obj,$(FUZZ_CLI_SRC)) $(TOOL_A) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $(filter %.o,$^) $(TOOL_A) $(LIB_A) $(LIBS)

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
# ==== end of fuzzing ==============================================================
