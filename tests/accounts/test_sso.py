"""Single sign-on by OpenID Connect against a fake provider on a loopback port.

The provider serves the token, userinfo and JWKS endpoints and signs ID tokens with an RSA
key of its own, so the library's real HTTP calls and signature checks run.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.urls import reverse

from planner.models import Invitation
from tests.factories import UserFactory

User = get_user_model()
BACKEND = "planner.accounts.sso.EmailMatchingBackend"
CLIENT_ID = "aethon-test"
ISSUER = "http://issuer.test"


class FakeProvider:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.claims: dict = {}  # what the next sign-in says about the person
        self.id_token_extra: dict = {}
        self.nonce = ""
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _json(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                assert form["client_id"] == [CLIENT_ID]
                assert form["code"] == ["the-code"]
                self._json({"access_token": "at", "id_token": provider.id_token()})

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                if self.path.startswith("/jwks"):
                    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(provider.key.public_key()))
                    self._json({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]})
                else:
                    assert self.headers["Authorization"] == "Bearer at"
                    self._json(provider.claims)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def id_token(self) -> str:
        payload = {
            "iss": ISSUER,
            "sub": "person-1",
            "aud": CLIENT_ID,
            "nonce": self.nonce,
            "email": self.claims.get("email"),
            **self.id_token_extra,
        }
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": "k1"})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def provider():
    p = FakeProvider()
    yield p
    p.close()


@pytest.fixture
def sso(settings, provider, db):
    settings.AETHON_OIDC_ENABLED = True
    settings.AUTHENTICATION_BACKENDS = [*django_settings.AUTHENTICATION_BACKENDS, BACKEND]
    settings.ROOT_URLCONF = "tests.accounts.sso_urls"
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = "client-secret"  # noqa: S105
    settings.OIDC_RP_SIGN_ALGO = "RS256"
    settings.OIDC_RP_SCOPES = "openid email profile"
    settings.OIDC_OP_ISSUER = ISSUER
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = provider.url + "/authorize"
    settings.OIDC_OP_TOKEN_ENDPOINT = provider.url + "/token"
    settings.OIDC_OP_USER_ENDPOINT = provider.url + "/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = provider.url + "/jwks"
    settings.OIDC_CREATE_USER = False
    settings.OIDC_USE_PKCE = True
    settings.LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?sso=failed"
    return provider


def sign_in(client, provider, **claims) -> object:
    """The browser's round trip: to the provider and back with a code."""
    provider.claims = {"email_verified": True, **claims}
    start = client.get("/oidc/authenticate/")
    assert start.status_code == 302
    query = parse_qs(urlparse(start["Location"]).query)
    assert start["Location"].startswith(provider.url + "/authorize")
    assert query["client_id"] == [CLIENT_ID] and "code_challenge" in query
    provider.nonce = query["nonce"][0]
    return client.get("/oidc/callback/", {"code": "the-code", "state": query["state"][0]})


def signed_in_as(client):
    return client.session.get("_auth_user_id")


def test_off_by_default(db, client):
    assert not django_settings.AETHON_OIDC_ENABLED
    assert BACKEND not in django_settings.AUTHENTICATION_BACKENDS
    assert client.get("/oidc/authenticate/").status_code == 404
    assert b"Sign in with" not in client.get(reverse("login")).content


def test_the_sign_in_page_offers_it_when_configured(sso, client, db):
    assert b'data-testid="sso"' in client.get(reverse("login")).content


def test_an_existing_account_is_matched_by_email_whatever_its_case(sso, client):
    user = UserFactory(email="ada@example.com")
    response = sign_in(client, sso, email="Ada@Example.com")
    assert response.status_code == 302 and response["Location"] == reverse("planner:project_list")
    assert signed_in_as(client) == str(user.pk)
    assert client.get(reverse("planner:project_list")).status_code == 200


def test_an_unknown_person_is_refused_unless_creation_is_allowed(sso, client, settings):
    refused = sign_in(client, sso, email="new@example.com")
    assert refused["Location"] == "/accounts/login/?sso=failed"
    assert not User.objects.filter(email="new@example.com").exists()
    assert b"Single sign-on did not sign you in" in client.get(refused["Location"]).content
    settings.OIDC_CREATE_USER = True
    created = sign_in(client, sso, email="New@example.com", given_name="Nia", family_name="New")
    assert created["Location"] == reverse("planner:project_list")
    user = User.objects.get(email="new@example.com")
    assert (user.username, user.first_name, user.is_active) == ("new@example.com", "Nia", True)
    assert not user.has_usable_password()
    assert signed_in_as(client) == str(user.pk)


def test_a_deactivated_account_stays_out(sso, client):
    UserFactory(email="gone@example.com", is_active=False)
    response = sign_in(client, sso, email="gone@example.com")
    assert response["Location"] == "/accounts/login/?sso=failed"
    assert signed_in_as(client) is None


def test_signing_in_accepts_a_pending_invitation(sso, client):
    user = UserFactory(email="invited@example.com", is_active=False)
    Invitation.objects.create(user=user)
    sign_in(client, sso, email="invited@example.com")
    user.refresh_from_db()
    assert user.is_active and not Invitation.objects.filter(user=user).exists()
    assert signed_in_as(client) == str(user.pk)


@pytest.mark.parametrize(
    "claims, extra",
    [
        ({"email_verified": False}, {}),  # unverified address
        ({}, {"aud": "another-client"}),  # token minted for someone else
        ({}, {"iss": "http://evil.test"}),
        ({}, {"nonce": "replayed"}),
    ],
)
def test_doubtful_tokens_and_claims_sign_nobody_in(sso, client, claims, extra):
    UserFactory(email="target@example.com")
    sso.id_token_extra = extra
    provider_claims = {"email": "target@example.com", **claims}
    sso.claims = provider_claims
    start = client.get("/oidc/authenticate/")
    query = parse_qs(urlparse(start["Location"]).query)
    sso.nonce = query["nonce"][0]
    sso.claims = {"email_verified": True, **provider_claims}
    response = client.get("/oidc/callback/", {"code": "the-code", "state": query["state"][0]})
    assert response["Location"] == "/accounts/login/?sso=failed"
    assert signed_in_as(client) is None
