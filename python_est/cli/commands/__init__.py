"""The commands of `python-est`, one module per command, named after it; each has `add_command`."""
