"""
Tests for sshfinger.
"""
