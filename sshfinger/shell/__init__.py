"""
The SSH command shell: commands, the line editor and the interactive shell."""
