"""``python -m engine`` (and ``accelerate launch -m engine``) run the engine CLI."""

from engine.cli import main

if __name__ == "__main__":
    main()
