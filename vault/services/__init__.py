"""The vault's application services, one per concern, each given only the ports it uses
(composed in ``adapters.wiring``)."""
