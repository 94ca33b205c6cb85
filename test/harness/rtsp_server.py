#!/usr/bin/python3
"""A real RTSP server for camveil's tests: GStreamer's gst-rtsp-server (Debian: gir1.2-gst-rtsp-server-1.0).

Serves one mount, either an H.264 MP4 file (played in real time from its start for each client, no
re-encoding) or a live test pattern encoded with x264. Optional basic or digest authentication. Prints one JSON line
{"port": N} on stdout once it listens, then runs until killed.
"""
import argparse
import json
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mount", default="/stream")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--file")
    src.add_argument("--live", help="WIDTHxHEIGHT@FPS test pattern, encoded live")
    ap.add_argument("--user")
    ap.add_argument("--password", help="the password; without it (and with --user) it is read from stdin's first line")
    ap.add_argument("--digest", action="store_true", help="require digest authentication instead of basic")
    args = ap.parse_args()
    if args.user and args.password is None:
        # From stdin, so that tests scanning every process's argv for the password find none here either.
        args.password = sys.stdin.readline().rstrip("\n")

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))

    if args.file:
        launch = (
            f'( filesrc location="{args.file}" ! qtdemux ! h264parse config-interval=-1 '
            f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
    else:
        size, fps = args.live.split("@")
        width, height = size.split("x")
        launch = (
            f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 "
            f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} ! h264parse config-interval=-1 "
            f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(False)

    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", args.user)
        if args.digest:
            auth.add_digest(args.user, args.password or "", token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role_from_structure(
            Gst.Structure.new_from_string(
                f"{args.user}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )
        )
        factory.set_permissions(permissions)

    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(json.dumps({"error": f"cannot listen on port {args.port}"}), flush=True)
        sys.exit(1)
    print(json.dumps({"port": server.get_bound_port()}), flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
