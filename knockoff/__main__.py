from knockoff.cli import app

app()
