"""The model zoo: the ResNet family as data, the one model class, pretrained weights, label spaces, preprocessing."""
