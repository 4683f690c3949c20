"""Data sets the explorer ships or finds: CIFAR-10's test images, and the folders and CSVs an evaluation reads."""
