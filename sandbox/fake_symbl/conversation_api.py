"""The Conversation API (§7, §8): a conversation's JSON (the conversation, messages, members,
topics, questions, action items, follow-ups, analytics, summary) and its hosted summary page.

Decisions where the reference is silent:
- `/summary` answers 404 until the conversation has a completed job and none still running.
  Then a summary exists only when asked for the documented way (§2.1 `enableSummary`, §7): a
  `POST /summary?refresh=true` (a `GET` with `refresh=true` too, as one doc version shows) after
  completion, or a job submitted with `enableSummary: true`. It is written `summary_seconds`
  after the refresh (or the job's completion); until then, 404. A refresh deletes the old one
  and starts again, and answers 202 `{"message": ...}` (the live body is undocumented).
- The summary is cached: it is written from the conversation as it was when asked for, so
  speakers named later by speaker events appear in it only after another refresh.
- A message nobody is known to have said has an empty `from` (`{}`), and no member.
- No summary for a conversation under `summary_min_words` (50) words or `summary_min_sentences`
  (3) sentences (§7). What Symbl answers then is undocumented: by default the fake answers 200
  `{"summary": []}`; `unsummarisable_answer = "404"` makes it answer 404 instead.
- A hosted summary page (§8) is an https URL on the fake's own host, as Symbl's are https; the
  fake serves the page there in plain http. Every accepted request is recorded with its options
  (`experience_requests`), so tests can check `summaryURLExpiresIn` and `readOnly`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue

from sandbox.fake_symbl.insights import (
    _analytics,
    _person,
    _questions,
    _sentiment,
    _summary,
    _tasks,
    _topics,
)
from sandbox.fake_symbl.jobs import _is_bool, _is_int
from sandbox.fake_symbl.model import _at, _error, _iso, _Member, _Message, _Transcript
from sandbox.fake_symbl.recogniser import _words

if TYPE_CHECKING:
    from sandbox.fake_symbl.state import FakeSymblState


@dataclass(frozen=True)
class ExperienceRequest:
    """An accepted request for a hosted summary page (§8): lets tests see the page's options,
    `summaryURLExpiresIn` and `readOnly` above all, and the URL the fake answered."""

    conversation_id: str
    name: str
    options: dict[str, Any]  # every body field but `name`, as sent
    url: str


class _NotFound(Exception):
    """An unknown conversation: 404 with a message."""


def _message_json(
    message: _Message, transcript: _Transcript, *, verbose: bool, sentiment: bool
) -> dict[str, Any]:
    speaker = {"id": message.member.id} | _person(message.member) if message.member else {}
    body: dict[str, Any] = {
        "id": message.id,
        "text": message.text,
        "from": speaker,
        "startTime": _at(transcript, message.time_offset),
        "endTime": _at(transcript, message.time_offset + message.duration),
        "timeOffset": message.time_offset,
        "duration": message.duration,
        "conversationId": transcript.id,
        "phrases": [{"type": "action_phrase", "text": p} for p in message.phrases],
    }
    if sentiment:
        body["sentiment"] = _sentiment(message.text)
    if verbose:
        body["words"] = _words(message, transcript)
    return body


def _conversation_json(transcript: _Transcript) -> dict[str, Any]:
    return {
        "id": transcript.id,
        "type": "meeting",
        "name": transcript.name,
        "startTime": _iso(transcript.start),
        "endTime": _at(transcript, transcript.duration),
        "members": [_members_json(m) for m in transcript.members],
        "metadata": {},
    }


def _members_json(member: _Member) -> dict[str, str]:
    return {"id": member.id} | _person(member)


_MEETING_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Meeting insights (fake Symbl)</title></head>
<body>
<h1 id="title">Meeting insights</h1>
<main id="insights"><p>Loading&hellip;</p></main>
<script>
"use strict";
const main = document.getElementById("insights");
function section(title, lines) {
  const heading = document.createElement("h2");
  heading.textContent = title;
  const list = document.createElement("ul");
  for (const line of lines) {
    const item = document.createElement("li");
    item.textContent = line;
    list.appendChild(item);
  }
  main.append(heading, list);
}
try {
  const session = JSON.parse(atob(location.hash.replace(/^#\\/?/, "").split("?")[0]));
  const id = session.sessionId || session.conversationId;
  fetch("data/" + encodeURIComponent(id))
    .then((response) => {
      if (!response.ok) throw new Error(response.status);
      return response.json();
    })
    .then((data) => {
      main.textContent = "";
      document.getElementById("title").textContent = data.conversation.name;
      section("Summary", data.summary.map((s) => s.text));
      section("Action items", data.actionItems.map((a) => a.text));
      section("Follow-ups", data.followUps.map((f) => f.text));
      section("Questions", data.questions.map((q) => q.text));
      section("Topics", data.topics.map((t) => t.text));
      const said = (m) => (m.from.name ? m.from.name + ": " : "") + m.text;
      section("Transcript", data.messages.map(said));
    })
    .catch(() => { main.textContent = "Conversation not found."; });
} catch (error) {
  main.textContent = "Invalid meeting link.";
}
</script>
</body>
</html>
"""


def _flag(name: str) -> bool:
    return request.args.get(name, "").lower() == "true"


def _b64(payload: dict[str, str]) -> str:
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def add_routes(app: Flask, state: FakeSymblState) -> None:
    """The conversation endpoints and the stand-in summary page (`/meeting/...`)."""

    def transcript_or_404(conversation_id: str) -> _Transcript:
        transcript = state._transcript(conversation_id)
        if transcript is None:
            raise _NotFound(f"Conversation {conversation_id} not found.")
        return transcript

    @app.errorhandler(_NotFound)
    def not_found(exc: _NotFound) -> ResponseReturnValue:
        return _error(404, str(exc))

    @app.get("/v1/conversations/<cid>", endpoint="conversation")
    def conversation(cid: str) -> ResponseReturnValue:
        return jsonify(_conversation_json(transcript_or_404(cid)))

    @app.get("/v1/conversations/<cid>/messages", endpoint="messages")
    def messages(cid: str) -> ResponseReturnValue:
        t = transcript_or_404(cid)
        verbose, sentiment = _flag("verbose"), _flag("sentiment")
        return jsonify(
            messages=[_message_json(m, t, verbose=verbose, sentiment=sentiment) for m in t.messages]
        )

    @app.get("/v1/conversations/<cid>/topics", endpoint="topics")
    def topics(cid: str) -> ResponseReturnValue:
        return jsonify(topics=_topics(transcript_or_404(cid), sentiment=_flag("sentiment")))

    @app.get("/v1/conversations/<cid>/questions", endpoint="questions")
    def questions(cid: str) -> ResponseReturnValue:
        return jsonify(questions=_questions(transcript_or_404(cid)))

    @app.get("/v1/conversations/<cid>/action-items", endpoint="action_items")
    def action_items(cid: str) -> ResponseReturnValue:
        return jsonify(actionItems=_tasks(transcript_or_404(cid))[0])

    @app.get("/v1/conversations/<cid>/follow-ups", endpoint="follow_ups")
    def follow_ups(cid: str) -> ResponseReturnValue:
        return jsonify(followUps=_tasks(transcript_or_404(cid))[1])

    @app.get("/v1/conversations/<cid>/summary", endpoint="summary")
    def summary(cid: str) -> ResponseReturnValue:
        t = transcript_or_404(cid)
        if not t.complete:
            return _error(404, "Summary is not available until the job is complete.")
        if _flag("refresh"):
            state._request_summary(cid)
        written = state._summary_transcript(cid)
        if written is None:
            return _error(404, f"Summary for conversation {cid} not found.")
        if not state._summarisable(written):
            if state.unsummarisable_answer == "404":
                return _error(404, f"Summary for conversation {cid} not found.")
            return jsonify(summary=[])
        return jsonify(summary=_summary(written))

    @app.post("/v1/conversations/<cid>/summary", endpoint="summary_refresh")
    def summary_refresh(cid: str) -> ResponseReturnValue:
        t = transcript_or_404(cid)
        if not _flag("refresh"):
            return _error(400, "Only refresh=true is supported.")
        if not t.complete:
            return _error(404, "Summary is not available until the job is complete.")
        state._request_summary(cid)
        return jsonify(message="Summary generation started."), 202

    @app.get("/v1/conversations/<cid>/analytics", endpoint="analytics")
    def analytics(cid: str) -> ResponseReturnValue:
        return jsonify(_analytics(transcript_or_404(cid)))

    @app.get("/v1/conversations/<cid>/members", endpoint="members")
    def members(cid: str) -> ResponseReturnValue:
        return jsonify(members=[_members_json(m) for m in transcript_or_404(cid).members])

    @app.post("/v1/conversations/<cid>/experiences", endpoint="experiences")
    def experiences(cid: str) -> ResponseReturnValue:
        transcript_or_404(cid)
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "Request body must be a JSON object.")
        expires = body.get("summaryURLExpiresIn")
        if expires is not None and not (_is_int(expires) and expires >= 0):
            return _error(400, "summaryURLExpiresIn must be a non-negative integer.")
        for key in ("readOnly", "enableCustomDomain"):
            if key in body and not _is_bool(body[key]):
                return _error(400, f"{key} must be a boolean.")
        # The hosted page is https, like Symbl's; this fake serves it on its own host in plain
        # http (no TLS on loopback), so a local browser opens it with `http://` at the same path.
        page = f"https://{request.host}/meeting/#/"
        name = body.get("name")
        if name == "verbose-text-summary":
            url = page + _b64({"sessionId": cid})
        elif name in ("video-summary", "audio-summary"):
            media_key = "videoUrl" if name == "video-summary" else "audioUrl"
            media = body.get(media_key)
            if not isinstance(media, str) or not media:
                return _error(400, f"{media_key} is required for {name}.")
            if name == "video-summary":
                url = page + _b64({"sessionId": cid, "videoUrl": media}) + "?showVideoSummary=true"
            else:
                url = page + _b64({"conversationId": cid, "audioUrl": media})
        else:
            return _error(400, "name must be verbose-text-summary, video-summary or audio-summary.")
        options = {key: value for key, value in body.items() if key != "name"}
        state._record_experience(ExperienceRequest(cid, name, options, url))
        return jsonify(name=name, url=url)

    @app.get("/meeting/", endpoint="meeting_page")
    def meeting_page() -> ResponseReturnValue:
        return Response(_MEETING_PAGE, mimetype="text/html")

    @app.get("/meeting/data/<cid>", endpoint="meeting_data")
    def meeting_data(cid: str) -> ResponseReturnValue:
        t = transcript_or_404(cid)
        actions, follow = _tasks(t)
        return jsonify(
            conversation=_conversation_json(t),
            summary=_summary(t) if t.complete else [],
            actionItems=actions,
            followUps=follow,
            questions=_questions(t),
            topics=_topics(t, sentiment=False),
            messages=[_message_json(m, t, verbose=False, sentiment=False) for m in t.messages],
        )
