"""Packets on the wire: capture files, tunnel headers, and the temporary-tunnel probe between nodes."""
