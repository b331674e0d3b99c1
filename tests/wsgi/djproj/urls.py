from django.urls import path

from djproj.notes import views

urlpatterns = [
    path("notes/", views.notes),
    path("hello/<str:name>", views.hello),
]
