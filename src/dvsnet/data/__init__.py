"""Data: label table, video/frame reading and writing, Cityscapes-layout loader, synthetic renderer."""
