"""The version catalog: pinned upstream releases and what their components accept."""
