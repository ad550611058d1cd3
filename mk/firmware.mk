# Firmware: host build of the portable core (CMake + GoogleTest), the virtual device, NVS provisioning.
FIRMWARE_BUILD := $(ROOT)/.cache/firmware-build

.PHONY: firmware-host firmware-test

firmware-host: ## Build the firmware core, its tests and the virtual device on the host (CMake)
	cmake -S $(ROOT)/firmware -B $(FIRMWARE_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(FIRMWARE_BUILD) -j $$(nproc)

firmware-test: firmware-host ## Run the firmware host tests (GoogleTest via ctest: vectors, ring, power cuts, sender)
	cd $(FIRMWARE_BUILD) && ctest --output-on-failure

TEST_TARGETS += firmware-test
