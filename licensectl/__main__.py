from licensectl.cli import app

app()
