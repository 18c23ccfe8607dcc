"""The torch side: backbone, embedding model, loss, checkpoints, export. Needs the [train] extra."""
