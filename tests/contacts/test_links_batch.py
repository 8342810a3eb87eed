"""Batch unsubscribe links are exactly the single-contact ones."""

from __future__ import annotations

from contacts.links import token_read, unsubscribe_url, unsubscribe_urls


def test_batch_unsubscribe_links_match_single_links_and_read_back() -> None:
    urls = unsubscribe_urls(contact_ids=[7, 8], channel="email")
    assert set(urls) == {7, 8}
    for contact_id, url in urls.items():
        single = unsubscribe_url(contact_id=contact_id, channel="email")
        # Signed tokens carry a timestamp; compare the route and read the token back.
        assert url.rsplit("/", 2)[0] == single.rsplit("/", 2)[0]
        token = url.rstrip("/").rsplit("/", 1)[1]
        claims = token_read(token=token, salt="contacts.unsubscribe")
        assert (claims.contact_id, claims.channel) == (contact_id, "email")
