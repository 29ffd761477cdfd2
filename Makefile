# The README's two commands. Each installs what is missing first, then builds.
# MPI=mpich builds against MPICH instead of Open MPI, in a build folder of its own: the two are
# not ABI-compatible, so a binary is for one of them (Package.swift reads DEEPDEM_MPI).
MPI ?= openmpi
ifeq ($(MPI),openmpi)
BUILD_DIR := .build
MPI_PACKAGES := libopenmpi-dev openmpi-bin
else ifeq ($(MPI),mpich)
BUILD_DIR := .build-mpich
MPI_PACKAGES := libmpich-dev mpich
else
$(error MPI=$(MPI) is not known; choose MPI=openmpi (the default) or MPI=mpich)
endif
export DEEPDEM_MPI := $(MPI)
APT_PACKAGES := pkg-config $(MPI_PACKAGES) libopenblas-dev libgdal-dev gdal-bin
# The tests also run a real (throwaway) Slurm cluster on this machine; without recommends,
# since Slurm's would pull in dozens of unneeded packages. Both MPIs: a build's tests start the
# other MPI's launcher too (the wrong launcher must be refused), and `make test` builds both.
TEST_PACKAGES := slurmctld slurmd slurm-client munge libopenmpi-dev openmpi-bin libmpich-dev mpich
SWIFT ?= swift
# NATIVE=1 compiles the hot loops for this machine's CPU (about 2.5x on plain loops); the
# default build runs on any x86-64.
ifeq ($(NATIVE),1)
SWIFT_FLAGS += -Xswiftc -target-cpu -Xswiftc $(shell gcc -march=native -Q --help=target 2>/dev/null | awk '$$1=="-march=" {print $$2}')
endif
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1

.PHONY: demo test test-ranks deps test-deps build clean

# Installs whichever of the listed Debian packages are missing, with extra apt-get flags.
define install-missing
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(2) $$missing; \
	fi
endef

deps:
	$(call install-missing,$(APT_PACKAGES))

test-deps: deps
	$(call install-missing,$(TEST_PACKAGES),--no-install-recommends)

build: deps
	$(SWIFT) build -c release --scratch-path $(BUILD_DIR) $(SWIFT_FLAGS)

demo: build
	bash tools/demo.sh

# The default `make test` runs the whole suite against Open MPI, then the multi-rank tests again
# from an MPICH build under MPICH's launchers (the tests take the launcher from the build's MPI).
test: test-deps
	$(SWIFT) build -c release --scratch-path $(BUILD_DIR) $(SWIFT_FLAGS)
	$(SWIFT) test -c release --scratch-path $(BUILD_DIR) $(SWIFT_FLAGS)
ifeq ($(MPI),openmpi)
	$(MAKE) --no-print-directory test-ranks MPI=mpich
	$(MAKE) --no-print-directory test-bundle
endif

# Communicator checks; N ranks ≡ 1 rank, resume, stop signals, a killed rank, a failing rank,
# divergence, the wrong launcher; a Slurm job requeued and resumed.
RANK_TESTS := CommunicatorTests|RefineRanksTests|HeldOutTests/(testHeldOutSites|testStripesWithAFold)|TrainingTests/(testRanksTrainAsOne|testResumeEqualsUninterrupted|testSignal|testKilledRank|testBadConfigurations|testFullDisk|testDivergence|testWrongLauncher)|SlurmTests/(testMPICH|testScancel)

test-ranks: test-deps
	$(SWIFT) test -c release --scratch-path $(BUILD_DIR) $(SWIFT_FLAGS) --filter '$(RANK_TESTS)'

clean:
	rm -rf .build .build-mpich .build-dist .build-dist-mpich .build-chroot dist runs

# The relocatable bundle (tools/dist.sh) and its test on a Debian root without Swift.
TEST_PACKAGES += debootstrap
# The commit `deepdem --version` names (Package.swift reads it).
export DEEPDEM_COMMIT := $(shell git describe --always --dirty --abbrev=12 2>/dev/null)
.PHONY: dist test-bundle

dist: deps
	$(call install-missing,patchelf)
	SWIFT=$(SWIFT) bash tools/dist.sh $(MPI) >/dev/null

test-bundle: test-deps
	bundle=$$(SWIFT=$(SWIFT) bash tools/dist.sh $(MPI)) && bash Tests/Bundle/chroot.sh "$$bundle"
