"""Fuzz tests: the text normaliser and identifier patterns, the app and web channels, the CRM's and
the desk's HTTP APIs described by their OpenAPI documents.

The pytest versions run few examples (``make test`` stays fast); ``python -m bench.fuzz`` runs the
same strategies and checks for longer and counts what it tried and what it saw.
"""
