"""Apply resize plans through libvirt: dry run by default, then apply -> verify -> revert, audited.

``plan`` holds the value types and plan-file validation, ``policy`` the restart policy and maintenance
windows, ``locks`` the per-VM cross-process lock, ``snapshot`` what a resize reads of a domain,
``changes`` the pure planning of live vs persistent changes, ``resize`` the action's steps, ``prechecks``
the checks before any change, ``verify`` the comparison against libvirt, ``revert`` the way back,
``outcome`` and ``result`` its result and audit record, ``output`` the diff and row formatting, and
``runner`` runs a whole plan.
"""
