#!/bin/sh
# ACPI power button handler of the test guest: sync and power off at once.
echo "rs-init: power button, powering off"
sync
poweroff -f
