"""Speech analytics, provider-neutral: the segment map that ties a submitted file to speakers and
to the meeting's clock."""
