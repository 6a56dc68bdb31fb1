# effcam - one Makefile. Knobs:
#   DEBUG=1     AddressSanitizer + UndefinedBehaviorSanitizer, -O1, objects in build/debug
#   NATIVE=1    -march=native for everything (default: baseline x86-64 + per-file ISA flags)
#   WERROR=0    do not turn warnings into errors
#   PREFIX=...  install prefix (default /usr/local)
# Targets: all demo test bench fuzz install uninstall clean

CC      ?= cc
PREFIX  ?= /usr/local
DEBUG   ?= 0
NATIVE  ?= 0
WERROR  ?= 1
SOVERSION := 0
VERSION := 0.1.0

ifeq ($(DEBUG),1)
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
BLAS_LIBS   = $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
CFLAGS_ALL  = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -fPIC -MMD -MP -I. $(BLAS_CFLAGS) $(CFLAGS)
LIBS        = $(BLAS_LIBS) -lz -lm -lpthread
# Per-file ISA flags: only the files that need them (runtime dispatch picks).
ISA_avx2    := -mavx2 -mfma -mf16c
ISA_avx512  := -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma -mf16c

KERNEL_SRC  := $(sort $(wildcard kernels/*.c))
ENGINE_SRC  := $(filter-out engine/main.c engine/cli_%.c,$(sort $(wildcard engine/*.c)))
CLI_SRC     := engine/main.c $(sort $(wildcard engine/cli_*.c))
CONVERT_SRC := $(sort $(wildcard convert/*.c))
MODELS_SRC  := $(sort $(wildcard models/*.c))
TEST_SRC    := $(sort $(wildcard tests/test_*.c))
BENCH_SRC   := $(sort $(wildcard bench/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJ   := $(call obj,$(KERNEL_SRC) $(ENGINE_SRC))
TOOL_OBJ  := $(call obj,$(CONVERT_SRC) $(MODELS_SRC))
CLI_OBJ   := $(call obj,$(CLI_SRC))
TEST_BIN  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

LIB_A   := $(BUILD)/libeffcam.a
LIB_SO  := $(BUILD)/libeffcam.so.$(VERSION)
TOOL_A  := $(BUILD)/libeffcam_tools.a
EFFCAM  := $(BUILD)/effcam

.DELETE_ON_ERROR:
.PHONY: all demo test test-run bench fuzz deps install uninstall clean
all: $(EFFCAM) $(LIB_A) $(LIB_SO) $(TEST_BIN) $(BENCH_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(ISA_$(lastword $(subst __, ,$(basename $(notdir $<))))) -c $< -o $@

# stb_image's implementation is third-party code compiled from the system header.
$(BUILD)/obj/engine/stb_image_impl.o: engine/stb_image_impl.c
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
	  'Libs.private: $(BLAS_LIBS) -lz -lm -lpthread' > $(DESTDIR)$(LIBDIR)/pkgconfig/effcam.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/effcam $(DESTDIR)$(PREFIX)/include/effcam.h
	rm -f $(DESTDIR)$(LIBDIR)/libeffcam.a $(DESTDIR)$(LIBDIR)/libeffcam.so \
	  $(DESTDIR)$(LIBDIR)/libeffcam.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libeffcam.so.$(VERSION) \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/effcam.pc

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
