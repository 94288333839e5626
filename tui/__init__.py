"""tuneloop's Textual app. Presentation only: everything else is in ``engine``."""
