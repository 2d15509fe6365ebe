"""Apply resize plans through libvirt: dry run by default, then apply -> verify -> revert, audited.

``plan`` holds the value types and plan-file validation, ``policy`` the restart policy and maintenance
windows, ``locks`` the per-VM cross-process lock and ``resize`` the action itself.
"""
