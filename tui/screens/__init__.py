"""Modal screens: errors, editing, reasons, choosing, comparing, the loop panel, help."""
