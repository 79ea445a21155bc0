"""
The SSH side of sshfinger: host keys, credential checkers and the Conch service.
"""
