"""`skeldir demo`: a demo shop's day of visitors, touchpoints and orders, sent to a running
system exactly as a storefront's collector and the commerce platforms would send them."""
