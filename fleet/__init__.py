"""The shop assistant as a fleet on one machine: hosts in network namespaces, every service by its role
(``python -m bot.launcher serve ROLE``), HAProxy in front, Redis with Sentinel, and the checks of
``make fleet-test`` (docs/fleet.md)."""
