# vecutils - build, test, install.
#
#   make                 lib/libvec.a and bin/vec-*
#   make test            C unit tests and the bats suite
#   make test SAN=1      the same under AddressSanitizer + UBSan
#   make demo            the iris example and an fvecs pipeline
#   make bench           exact, HNSW and IVF search against FAISS and hnswlib
#                        (BENCH_PART=exact|hnsw|ivf|all; see scripts/bench)
#   make install PREFIX=/usr/local DESTDIR=
#
# CC, CFLAGS, CPPFLAGS, LDFLAGS are yours; required flags live in ALL_CFLAGS.
# Put local settings in config.mak.

-include config.mak

CC ?= cc
CFLAGS ?= -O2 -g
WARNINGS = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man

# -MMD -MP: write a .d file of header dependencies beside each object, with
# phony targets for headers so that deleting one does not break the build.
DEPFLAGS = -MMD -MP

ifeq ($(FUZZ),1)
# make fuzz: clang's libFuzzer, with ASan and UBSan, in its own tree.
CC = clang
SANFLAGS = -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
BUILD = build/fuzz
else ifeq ($(SAN),1)
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
BUILD = build/san
else
SANFLAGS =
BUILD = build/rel
endif

ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -Ilib -pthread $(WARNINGS) $(CPPFLAGS) $(CFLAGS) $(SANFLAGS)
ALL_LDFLAGS = -pthread $(LDFLAGS) $(SANFLAGS)
LDLIBS = -lz -lm

ARCH := $(shell $(CC) -dumpmachine 2>/dev/null)
LIB_SRC = $(filter-out lib/distance_%.c lib/flat_%.c lib/sq8_%.c lib/pq_%.c,$(wildcard lib/*.c))
ifneq (,$(filter x86_64% amd64% i%86%,$(ARCH)))
LIB_SRC += lib/distance_avx2.c lib/distance_avx512.c lib/flat_avx2.c lib/flat_avx512.c lib/flat_bf16.c
LIB_SRC += lib/sq8_avx2.c lib/sq8_avx512.c lib/pq_avx2.c lib/pq_avx512.c
SIMD_DEFS = -DVEC_HAVE_X86
endif
ifneq (,$(filter aarch64% arm%,$(ARCH)))
LIB_SRC += lib/distance_neon.c
SIMD_DEFS = -DVEC_HAVE_NEON
endif
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o)

# SIMD flags per object: only these files contain intrinsics, and the
# dispatcher in distance.c picks one at run time.
$(BUILD)/lib/distance_avx2.o: ALL_CFLAGS += -mavx2 -mfma
$(BUILD)/lib/distance_avx512.o: ALL_CFLAGS += -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma
$(BUILD)/lib/flat_avx2.o: ALL_CFLAGS += -mavx2 -mfma
$(BUILD)/lib/flat_avx512.o: ALL_CFLAGS += -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma
$(BUILD)/lib/sq8_avx2.o: ALL_CFLAGS += -mavx2 -mfma
$(BUILD)/lib/sq8_avx512.o: ALL_CFLAGS += -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma
$(BUILD)/lib/pq_avx2.o: ALL_CFLAGS += -mavx2
$(BUILD)/lib/pq_avx512.o: ALL_CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx2
# pq.c's portable table and LUT loops use float compare-and-select; GCC
# if-converts (and so vectorises) them only when it may assume no FP traps,
# which the library never enables.
$(BUILD)/lib/pq.o: ALL_CFLAGS += -fno-trapping-math
$(BUILD)/lib/flat_bf16.o: ALL_CFLAGS += -mavx512f -mavx512bf16 -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma
$(BUILD)/lib/distance.o $(BUILD)/lib/flat.o $(BUILD)/lib/sq8.o $(BUILD)/lib/pq.o: ALL_CFLAGS += $(SIMD_DEFS)
# ivf.c's table sums are plain loops: let gcc -O2 vectorise them (baseline
# SSE2, no -m flags).
$(BUILD)/lib/ivf.o: ALL_CFLAGS += -ftree-vectorize

CMDS = vec-build vec-add vec-query vec-stat
BINS = $(CMDS:%=bin/%)
CMD_COMMON = $(BUILD)/cmd/cmd.o

UNIT_SRC = $(filter-out tests/unit/bench_%.c,$(wildcard tests/unit/*.c))
UNIT_OBJ = $(UNIT_SRC:%.c=$(BUILD)/%.o)

# Fuzz targets: tests/fuzz/fuzz_NAME.c.  In make test they are linked into
# one replay driver that runs the committed corpus (tests/fuzz/corpus/NAME);
# make fuzz links each with libFuzzer instead and runs it for FUZZ_TIME
# seconds.
FUZZ_TARGETS = index fvecs csv npy gzip
FUZZ_TIME ?= 60
REPLAY_OBJ = $(BUILD)/tests/fuzz/replay.o $(BUILD)/tests/fuzz/fuzz_stream.o \
	$(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/fuzz_%.o)

ifeq ($(SAN),1)
BINDIR_BUILD = $(BUILD)/bin
else
BINDIR_BUILD = bin
endif
BUILT_BINS = $(CMDS:%=$(BINDIR_BUILD)/%)

.PHONY: all test unit bats demo bench install uninstall clean fuzz valgrind
ifeq ($(SAN),1)
all: $(BUILT_BINS)
else
all: $(BUILT_BINS) lib/libvec.a
endif

$(BUILD)/libvec.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $(LIB_OBJ)

# The release library is also left at lib/libvec.a, for programs of users.
lib/libvec.a: build/rel/libvec.a
	cp build/rel/libvec.a $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(BINDIR_BUILD)/vec-%: $(BUILD)/cmd/vec-%.o $(CMD_COMMON) $(BUILD)/libvec.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $(BUILD)/cmd/vec-$*.o $(CMD_COMMON) $(BUILD)/libvec.a $(LDLIBS)

$(BUILD)/tests/unit/run: $(UNIT_OBJ) $(BUILD)/libvec.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(UNIT_OBJ) $(BUILD)/libvec.a $(LDLIBS)


$(BUILD)/tests/unit/%.o: ALL_CFLAGS += -Itests/unit
$(BUILD)/tests/fuzz/%.o: ALL_CFLAGS += -Itests/fuzz

$(BUILD)/tests/fuzz/replay: $(REPLAY_OBJ) $(BUILD)/libvec.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(REPLAY_OBJ) $(BUILD)/libvec.a $(LDLIBS)

# libFuzzer binaries (FUZZ=1 only): the target built with -DVEC_LIBFUZZER.
$(BUILD)/tests/fuzz/lf_%.o: tests/fuzz/fuzz_%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DVEC_LIBFUZZER $(DEPFLAGS) -c -o $@ $<
$(BUILD)/fuzz-%: $(BUILD)/tests/fuzz/lf_%.o $(BUILD)/tests/fuzz/fuzz_stream.o $(BUILD)/libvec.a
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# The fault injector the reliability tests preload (never sanitized: it
# only stands in front of libc).
FAULT_LIB = $(BUILD)/tests/fault/libfault.so
$(FAULT_LIB): tests/fault/fault.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 $(WARNINGS) -fPIC -shared -o $@ $< -ldl

# The whole suite; the last line is "N passed, N failed".
test: $(BUILT_BINS) $(BUILD)/tests/unit/run $(BUILD)/tests/fuzz/replay $(FAULT_LIB)
	@VEC_BIN=$(CURDIR)/$(BINDIR_BUILD) UNIT=$(BUILD)/tests/unit/run \
	  REPLAY=$(BUILD)/tests/fuzz/replay VEC_FAULT_LIB=$(CURDIR)/$(FAULT_LIB) \
	  sh scripts/run-tests.sh

# Part of the suite under valgrind's memcheck (scripts/valgrind.sh).
valgrind: $(BUILT_BINS) $(BUILD)/tests/unit/run $(BUILD)/tests/fuzz/replay
	@VEC_BIN=$(CURDIR)/$(BINDIR_BUILD) UNIT=$(BUILD)/tests/unit/run \
	  REPLAY=$(BUILD)/tests/fuzz/replay sh scripts/valgrind.sh

# Run every fuzzer for FUZZ_TIME seconds (FUZZ_TARGETS to choose); new
# inputs collect in build/fuzz/corpus/NAME, crashes in build/fuzz/.
fuzz:
	$(MAKE) FUZZ=1 $(FUZZ_TARGETS:%=build/fuzz/fuzz-%)
	FUZZ_TIME=$(FUZZ_TIME) sh scripts/fuzz.sh $(FUZZ_TARGETS)

unit: $(BUILD)/tests/unit/run
	$(BUILD)/tests/unit/run

bats: $(BUILT_BINS) $(FAULT_LIB)
	VEC_BIN=$(CURDIR)/$(BINDIR_BUILD) VEC_FAULT_LIB=$(CURDIR)/$(FAULT_LIB) bats tests

demo: $(BUILT_BINS)
	@VEC_BIN=$(CURDIR)/$(BINDIR_BUILD) sh scripts/demo.sh

DATA ?= ../shared/data
bench: $(BUILT_BINS)
	VEC_BIN=$(CURDIR)/$(BINDIR_BUILD) sh scripts/bench $(DATA)

install: $(BINS) lib/libvec.a
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)
	install -m 644 lib/libvec.a $(DESTDIR)$(PREFIX)/lib
	install -m 644 lib/vec.h $(DESTDIR)$(PREFIX)/include
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1
	install -m 644 man/*.5 $(DESTDIR)$(MANDIR)/man5

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libvec.a $(DESTDIR)$(PREFIX)/include/vec.h $(CMDS:%=$(DESTDIR)$(BINDIR)/%) $(CMDS:%=$(DESTDIR)$(MANDIR)/man1/%.1) $(DESTDIR)$(MANDIR)/man5/vec-index.5

clean:
	rm -rf build bin lib/libvec.a

-include $(shell find build -name '*.d' 2>/dev/null)
