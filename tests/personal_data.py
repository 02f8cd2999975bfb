"""Personal values in a provider payload, to prove none of them is ever kept."""

from __future__ import annotations

# Keys whose values are about a person (or their browser) wherever they appear.
PERSONAL_KEYS = {
    "email", "contact_email", "phone", "first_name", "last_name", "company", "address1",
    "address2", "city", "zip", "province", "latitude", "longitude", "browser_ip", "user_agent",
    "accept_language", "session_hash", "note", "order_status_url", "customer_id",
    "multipass_identifier", "token", "cart_token", "checkout_token",
}
# Within these objects every name, value and id is personal too.
PERSONAL_OBJECTS = {"customer", "billing_address", "shipping_address", "default_address",
                    "note_attributes", "properties", "client_details", "origin_location"}


def personal_values(node, parent: str = "") -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                found |= personal_values(value, key if key in PERSONAL_OBJECTS else parent)
            elif key in PERSONAL_KEYS or (parent and key in {"name", "value", "id"}):
                found |= _text(value)
    elif isinstance(node, list):
        for item in node:
            found |= personal_values(item, parent)
    return found


def _text(value) -> set[str]:
    if value is None or isinstance(value, bool) or len(str(value).strip()) < 3:
        return set()
    return {str(value)}
