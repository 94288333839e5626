"""``tuneloop``: open the chat app (filled in by the TUI issue)."""


def main() -> None:
    raise SystemExit("the tuneloop TUI is not built yet")


if __name__ == "__main__":
    main()
