import json
import os

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from djproj.notes.models import Note


def hello(request, name):
    return HttpResponse("hello %s from %s\n" % (name, request.META["SCRIPT_NAME"] or "/"),
                        content_type="text/plain")


@csrf_exempt
def notes(request):
    if request.method == "POST":
        n = Note.objects.create(text=json.loads(request.body)["text"])
        return JsonResponse({"id": n.id, "pid": os.getpid()}, status=201)
    return JsonResponse({"notes": [n.text for n in Note.objects.order_by("id")],
                         "count": Note.objects.count()})
