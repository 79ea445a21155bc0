"""
The SFTP view of the user store: each login sees its account as a small virtual directory (C{plan}, C{status},
C{.ssh/authorized_keys}, ...), which C{scp}, C{sftp}, C{sshfs} and C{ssh-copy-id} read and write.
"""
