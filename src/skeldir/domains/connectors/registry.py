"""The connectors, by platform: a new platform is one module and one line here."""

from __future__ import annotations

from skeldir.domains.connectors.google_ads import GoogleAdsConnector
from skeldir.domains.connectors.meta import MetaConnector
from skeldir.domains.connectors.platform import Connector
from skeldir.domains.connectors.tiktok import TikTokConnector

CONNECTORS: dict[str, Connector] = {}


def register(connector: Connector) -> None:
    CONNECTORS[connector.platform] = connector


register(MetaConnector())
register(GoogleAdsConnector())
register(TikTokConnector())
