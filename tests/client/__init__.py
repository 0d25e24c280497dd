"""Tests of syncctl that need no real daemon."""
