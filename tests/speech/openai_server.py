"""A speech server with OpenAI's transcription API, for the HTTP engine's tests.

POST /v1/audio/transcriptions takes a multipart form (file, model, language,
response_format) and answers `verbose_json` with segments, recognized by PocketSphinx
from PyPI (which carries its own US English model, so nothing is fetched at run time).
No server of this API with a bundled model can be installed from the registries the tests
reach (speaches, LocalAI and the like fetch their models from model hubs), so this small
one stands in for a user's speech server: the recognition is real, the API is OpenAI's.

  openai_server.py PORT_FILE [--key KEY] [--fail-first N]

Listens on a free loopback port and writes it to PORT_FILE. With --key, requests need
`Authorization: Bearer KEY` (401 otherwise). --fail-first N answers the first N requests
503, as an overloaded server does. Languages other than English get 400.
"""

import argparse
import email.parser
import email.policy
import io
import json
import os
import threading
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pocketsphinx import Decoder

LOCK = threading.Lock()
STATE = {"failures_left": 0, "requests": 0}


def form_fields(content_type, body):
    """The parts of a multipart/form-data body, by name: (filename, bytes)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ValueError("not a multipart form")
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[name] = (part.get_filename(), part.get_payload(decode=True))
    return fields


def recognize(wav_bytes):
    """PocketSphinx over 16 kHz mono WAV: one segment per utterance it finds."""
    with wave.open(io.BytesIO(wav_bytes)) as w:
        if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError("expected 16 kHz mono 16-bit WAV")
        pcm = w.readframes(w.getnframes())
        duration = w.getnframes() / 16000.0
    decoder = Decoder(samprate=16000, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    words = [
        (seg.start_frame / 100.0, seg.end_frame / 100.0, seg.word)
        for seg in decoder.seg()
        if not seg.word.startswith("<") and not seg.word.startswith("[")
    ]
    words = [(s, e, w.split("(")[0]) for s, e, w in words]
    segments = []
    if words:
        segments.append(
            {
                "id": 0,
                "start": words[0][0],
                "end": words[-1][1],
                "text": " " + " ".join(w for _, _, w in words),
            }
        )
    text = " ".join(s["text"].strip() for s in segments)
    return {"task": "transcribe", "language": "english", "duration": duration, "text": text, "segments": segments}


class Handler(BaseHTTPRequestHandler):
    key = None

    def log_message(self, *args):
        pass

    def answer(self, status, document):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, message):
        self.answer(status, {"error": {"message": message, "type": "invalid_request_error"}})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/audio/transcriptions":
            return self.error(404, "no such endpoint")
        with LOCK:
            STATE["requests"] += 1
            failing = STATE["failures_left"] > 0
            STATE["failures_left"] -= 1 if failing else 0
        if failing:
            return self.error(503, "overloaded, try again")
        if self.key is not None and self.headers.get("Authorization") != "Bearer " + self.key:
            return self.error(401, "Incorrect API key provided")
        try:
            fields = form_fields(self.headers.get("Content-Type", ""), body)
        except ValueError as e:
            return self.error(400, str(e))
        if "file" not in fields or "model" not in fields:
            return self.error(400, "file and model are required")
        language = (fields.get("language") or (None, b"en"))[1].decode()
        if language != "en":
            return self.error(400, "Unsupported language: " + language)
        try:
            result = recognize(fields["file"][1])
        except (ValueError, EOFError, wave.Error) as e:
            return self.error(400, "bad audio: " + str(e))
        fmt = (fields.get("response_format") or (None, b"json"))[1].decode()
        if fmt != "verbose_json":
            result = {"text": result["text"]}
        self.answer(200, result)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port_file")
    parser.add_argument("--key")
    parser.add_argument("--fail-first", type=int, default=0)
    args = parser.parse_args()
    Handler.key = args.key
    STATE["failures_left"] = args.fail_first
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
