"""Query serializers copy their fields from prototypes: instances stay independent."""

from django.http import QueryDict

from recommendations.api.recommendations import (
    SessionBodySerializer,
    SimilarQuerySerializer,
    UserRecommendationQuerySerializer,
)


def _validate(cls, data):
    serializer = cls(data=data)
    serializer.is_valid()
    return serializer


def test_each_instance_binds_its_own_fields():
    a = UserRecommendationQuerySerializer(data=QueryDict("n=5"))
    b = UserRecommendationQuerySerializer(data=QueryDict("n=7"))
    assert a.fields["n"] is not b.fields["n"]
    assert a.fields["n"].parent is a and b.fields["n"].parent is b
    # a subclass has its own prototypes (its extra field, not its parent's set)
    assert "user" in SimilarQuerySerializer().fields
    assert "user" not in UserRecommendationQuerySerializer().fields


def test_an_invalid_instance_leaves_the_next_one_valid():
    bad = _validate(UserRecommendationQuerySerializer, QueryDict("n=0&offset=-1"))
    assert set(bad.errors) == {"n", "offset"}
    good = _validate(UserRecommendationQuerySerializer, QueryDict("n=3&exclude=a,b,a"))
    assert good.errors == {}
    assert good.validated_data["n"] == 3
    assert good.validated_data["exclude"] == ["a", "b"]
    again = _validate(UserRecommendationQuerySerializer, QueryDict("n=abc"))
    assert set(again.errors) == {"n"}


def test_nested_fields_are_still_deep_copies():
    one, two = SessionBodySerializer(), SessionBodySerializer()
    assert one.fields["items"] is not two.fields["items"]
    assert one.fields["items"].child is not two.fields["items"].child
    bad = _validate(SessionBodySerializer, {"items": ["x" * 300]})
    assert "items" in bad.errors
    assert _validate(SessionBodySerializer, {"items": ["a", "b"]}).errors == {}
