"""Test support: fixtures' helpers, real-server launchers and shared fakes; no tests here."""
