"""Per-board provisioning of the ESP32 firmware (docs/firmware.md).

One source, the boards file (Ansible vars under Vault: ``firmware_boards`` and the shared Wi-Fi and
gateway settings), gives each board's NVS partition image and the gateway's device key registry.

    python -m firmware.provision nvs --boards boards.yml --out .cache/firmware-nvs
    python -m firmware.provision registry --boards boards.yml --out devices.yml
    python -m firmware.provision show .cache/firmware-nvs/esp32-lab-01.bin
"""
