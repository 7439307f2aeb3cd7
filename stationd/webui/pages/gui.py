"""GUI (SPEC §9: the station display settings).

The registry has three keys for what the station shows people: the display's language
(CurrentLocale) and the lights' brightness and blinking (LightIntensity, BlinkRepeat). The
station has no further display settings; the page says so.
"""

from __future__ import annotations

from aiohttp import web

from ..settings_form import post_keys, render_keys

routes = web.RouteTableDef()

SECTIONS = [("Station display", ["CurrentLocale", "LightIntensity", "BlinkRepeat"])]
CONTEXT = {"notes": ["The station's display and lights: these are all the display settings the station has."]}


@routes.get("/gui")
async def gui_page(request: web.Request) -> web.Response:
    return render_keys(request, title="GUI", sections=SECTIONS, **CONTEXT)


@routes.post("/gui")
async def gui_save(request: web.Request) -> web.Response:
    return await post_keys(request, title="GUI", sections=SECTIONS, **CONTEXT)
