"""The pure core: engine, control loop, formats. Never imports Qt."""
