"""
sshfinger: an RFC 1288 finger server and a Conch SSH service sharing one user store.
"""

__version__ = "0.1.0"
