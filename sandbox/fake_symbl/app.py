"""The HTTP face of the fake: a Flask app with Symbl's routes, status codes and bodies, served on
a loopback port."""

from __future__ import annotations

from flask import Flask, Response, g, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from sandbox.fake_symbl import auth, conversation_api, jobs, measure, speakers
from sandbox.fake_symbl.auth import TOKEN_INVALID_MESSAGE, _presented_tokens
from sandbox.fake_symbl.jobs import _Arrival
from sandbox.fake_symbl.measure import SANDBOX_ENDPOINTS
from sandbox.fake_symbl.model import _error
from sandbox.fake_symbl.state import FakeSymblState
from sandbox.http_server import LoopbackServer

_PUBLIC_ENDPOINTS = frozenset({"token", "meeting_page", "meeting_data"})
_SUBMIT_ENDPOINTS = frozenset({"submit", "append"})


def create_app(state: FakeSymblState) -> Flask:
    """The Flask app serving `state` with Symbl's routes, status codes and bodies.

    Fault knobs act before anything else (a 5xx from a load balancer knows nothing of tokens).
    Only token:generate and the stand-in summary page (`/meeting/...`, public like the hosted
    page) need no token. The sandbox readouts (`/_sandbox/...`) are no part of the service: no
    token, no faults.
    """
    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        return _error(exc.code or 500, exc.description or exc.name)

    @app.before_request
    def faults_and_auth() -> ResponseReturnValue | None:
        if request.endpoint in SANDBOX_ENDPOINTS:
            return None
        if request.endpoint in _SUBMIT_ENDPOINTS:
            g.arrival = state._arrival()  # before anything, faults included, can answer it
        status = state._take_http_fault(request.endpoint)
        if status is not None:
            return _error(status, HTTP_STATUS_CODES[status])
        if request.endpoint is None or request.endpoint in _PUBLIC_ENDPOINTS:
            return None
        if not state._authenticate(_presented_tokens()):
            return _error(401, TOKEN_INVALID_MESSAGE)
        return None

    @app.after_request
    def record_submit_attempt(response: Response) -> Response:
        arrival: _Arrival | None = g.pop("arrival", None)
        if arrival is not None:
            closed = g.pop("answer_closed", False)
            state._record_submit_attempt(arrival, None if closed else response.status_code)
        return response

    auth.add_routes(app, state)
    jobs.add_routes(app, state)
    conversation_api.add_routes(app, state)
    speakers.add_routes(app, state)
    measure.add_routes(app, state)
    return app


def serve(state: FakeSymblState) -> LoopbackServer:
    """Serve `state` on a free loopback port; the server is already started, call `.stop()`."""
    return LoopbackServer(create_app(state)).start()
