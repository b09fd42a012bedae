mesh {}
