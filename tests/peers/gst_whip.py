#!/usr/bin/python3
"""A WHIP publisher built on GStreamer's webrtcbin (Debian's GStreamer 1.22, libnice ICE,
OpenSSL DTLS with its RSA-2048 certificate): the stack of whipsink/whipclientsink, of many
hardware encoders and of MCUs that send their mix over WHIP.

Usage: gst_whip.py <whip-url> <token> <seconds> [camera|audio] [max-bundle|none]
Publishes a moving test pattern (VP8) and a 440 Hz tone (Opus), offers all its candidates
at once (no trickle), POSTs the offer, applies the answer, sends for <seconds> after the
connection is up, then DELETEs the resource. Prints one JSON line:
{"peer": "gstreamer", "sessionId", "location", "deleteStatus", "publishedFor", "offerHadBundle"}.
Exits non-zero with the reason on stderr if any step fails.
"""
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402


def fail(why):
    print(f"gstreamer publisher: {why}", file=sys.stderr)
    sys.exit(1)


def main():
    whip_url, token, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    kind = sys.argv[4] if len(sys.argv) > 4 else "camera"
    # "none": no BUNDLE group in the offer (an audio-only offer then has one m= line, no group).
    bundle = sys.argv[5] if len(sys.argv) > 5 else "max-bundle"
    Gst.init(None)
    video = (
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
        "! videoconvert ! vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay pt=96 "
        "! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! pc. "
    )
    audio = (
        "audiotestsrc is-live=true wave=sine freq=440 volume=0.3 ! audioconvert ! audioresample "
        "! opusenc ! rtpopuspay pt=111 "
        "! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! pc. "
    )
    pipeline = Gst.parse_launch(
        f"webrtcbin name=pc bundle-policy={bundle} " + (video if kind == "camera" else "") + audio
    )
    pc = pipeline.get_by_name("pc")
    loop = GLib.MainLoop()
    state = {"error": None, "connected_at": None}

    def on_bus(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            state["error"] = f"{err.message} ({dbg})"
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_bus)

    def on_connection_state(*_):
        s = pc.get_property("connection-state")
        if s == GstWebRTC.WebRTCPeerConnectionState.CONNECTED and state["connected_at"] is None:
            state["connected_at"] = time.monotonic()
            GLib.timeout_add(int(seconds * 1000), loop.quit)
        elif s == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            state["error"] = "the connection failed (ICE or DTLS)"
            loop.quit()

    pc.connect("notify::connection-state", on_connection_state)

    def on_gathering(*_):
        if pc.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            return
        if "posted" in state:
            return
        state["posted"] = True
        offer = pc.get_property("local-description").sdp.as_text()
        state["bundled"] = "a=group:BUNDLE" in offer
        req = urllib.request.Request(
            whip_url,
            data=offer.encode(),
            method="POST",
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                answer = resp.read().decode()
                state["location"] = urllib.parse.urljoin(whip_url, resp.headers["Location"])
                state["session"] = resp.headers.get("x-reel-session-id")
        except urllib.error.HTTPError as e:
            state["error"] = f"WHIP POST {e.code}: {e.read().decode()}"
            loop.quit()
            return
        _, sdp = GstSdp.SDPMessage.new_from_text(answer)
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        pc.emit("set-remote-description", desc, None)

    pc.connect("notify::ice-gathering-state", on_gathering)

    def on_offer(promise, _):
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        pc.emit("set-local-description", offer, None)

    def on_negotiation_needed(_):
        promise = Gst.Promise.new_with_change_func(on_offer, None)
        pc.emit("create-offer", None, promise)

    pc.connect("on-negotiation-needed", on_negotiation_needed)
    pipeline.set_state(Gst.State.PLAYING)

    def watchdog():
        if state["connected_at"] is None:
            state["error"] = state["error"] or "no connection in 20 s"
            loop.quit()
        return False

    GLib.timeout_add(20000, watchdog)
    loop.run()
    published = time.monotonic() - state["connected_at"] if state["connected_at"] else 0.0
    pipeline.set_state(Gst.State.NULL)
    if state["error"]:
        fail(state["error"])
    req = urllib.request.Request(
        state["location"], method="DELETE", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            delete_status = resp.status
    except urllib.error.HTTPError as e:
        delete_status = e.code
    print(json.dumps({
        "peer": "gstreamer",
        "sessionId": state["session"],
        "location": state["location"],
        "deleteStatus": delete_status,
        "publishedFor": published,
        "offerHadBundle": state.get("bundled"),
    }))


if __name__ == "__main__":
    main()
