"""Training loops and methods: one readable file each."""
