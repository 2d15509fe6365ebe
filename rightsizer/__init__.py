"""rightsizer: per-VM hourly cost, right-sizing and safe resizes for libvirt/KVM hosts."""

#: The release version, written only here (pyproject.toml reads it; see CHANGELOG.md).
__version__ = "0.2.0"
