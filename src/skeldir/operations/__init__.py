"""Operations that span domains: tenant and key administration, replay, re-parse, re-attribution,
exchange rates, the demo."""
