# Two commands do all the set-up (README.md): `make run` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)
MAKEFLAGS += --no-print-directory
LISTEN ?= 127.0.0.1:8080
DATA_DIR ?= ./.kiln

.PHONY: all deps configure build run test unit integration e2e bench format clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

configure: $(BUILD)/CMakeCache.txt

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@scripts/run-server $(BUILD)/kiln $(LISTEN) $(DATA_DIR)

test: build
	cd $(BUILD) && ctest --output-on-failure -j 1 --timeout 600

unit integration e2e: build
	cd $(BUILD) && ctest --output-on-failure -L $@

bench: build
	bench/api/run.sh $(BUILD)/kiln
	BUILD=$(BUILD) bench/sandbox/run.sh
	BUILD=$(BUILD) bench/deploy/run.sh
	BUILD=$(BUILD) bench/gateway/run.sh
	BUILD=$(BUILD) bench/mcp/run.sh

format:
	clang-format -i $$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h' 'bench/*.cc')

clean:
	rm -rf $(BUILD)
