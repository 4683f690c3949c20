"""ResNet Explorer: ``python app.py`` (options: ``--help``). Also the Hugging Face Space's entry point."""

from demo.launch import serve

if __name__ == "__main__":
    serve()
