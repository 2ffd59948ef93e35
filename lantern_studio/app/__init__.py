"""The Qt desktop studio. Nothing in ``lantern_studio.core`` imports from here."""
